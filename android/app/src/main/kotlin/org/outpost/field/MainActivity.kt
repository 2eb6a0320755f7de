package org.outpost.field

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.material3.MaterialTheme
import org.outpost.field.ui.FieldApp

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val app = application as OutpostApp
        setContent {
            MaterialTheme {
                FieldApp(core = app.core, onRecordWritten = { SyncWorker.soon(app) })
            }
        }
    }
}
